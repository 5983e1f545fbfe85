"""Reporting: what leaves Lightkeeper about confirmed cases (DESIGN §1, "report" and "figures").

Two concerns live here, each in its own modules:

- **CyberTipline reports to NCMEC** (US law, 18 U.S.C. § 2258A, has a provider report
  apparent child sexual abuse material it learns of, and preserve what it reported for a
  year). `lightkeeper.reporting.reports` makes a report from a case a person confirmed and
  sends it through NCMEC's documented flow as a resumable state machine;
  `lightkeeper.reporting.cybertipline` builds the XML documents in the schema's order;
  `lightkeeper.reporting.ncmec_client` speaks NCMEC's API; `lightkeeper.reporting.settings`
  holds where reports go and who reports (the reporter profile);
  `lightkeeper.reporting.ncmec_contract` is a local test double of NCMEC's published
  contract, for tests and demonstrations (NCMEC itself is never contacted from tests).
- **Transparency and error figures**: what was matched, acted on, reviewed, confirmed or
  found wrong, reported and appealed in a period, per list and algorithm, as JSON, CSV and
  an HTML page (`lightkeeper.reporting.transparency`, `transparency.page`).

Every report states truthfully, per file, whether a person at the provider viewed it: the
audit trail of reveals is the only source (a system read of the vault, such as the upload
of a reported file, is not a view). See docs/reporting.md.
"""
