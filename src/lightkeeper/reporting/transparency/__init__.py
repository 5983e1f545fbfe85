"""Transparency and error figures for a period: what was matched, what was done about it, how
often people looked, how often the lists and algorithms were wrong, what was reported and
how appeals ended.

The EU's interim rules ask a provider to publish its error rates per technology, and anyone
relying on a hash list needs to know how often each list is wrong for their platform. So the
figures come per algorithm (signal type) and per list (bank, list name, list version), each
false-positive ratio with its 95 % Wilson score interval: a ratio on three cases says little,
and the interval says how little.

Periods are half-open, ``[start, end)`` in UTC: a row at exactly ``end`` belongs to the next
period, so consecutive periods add up. What each figure counts, and which timestamp puts a
row in the period (docs/transparency.md has the same in prose):

- **matches**: recorded matches (``case_matches``, one per acted-on upload) by ``at``. An
  upload can match several banks and signal types: it counts once under each bank and each
  signal type its acting matches name (``uploads``), and every acting match counts under its
  own (``matches``). ``exact``: uploads with at least one cryptographic-hash match;
  ``perceptual_only``: the others (the same split the policy's ``match`` selector makes).
- **actions**: the same uploads, by action taken, and how many were rejected.
- **review**: cases that asked for review (a priority) and were first seen in the period, how
  many have a human decision of any kind by the time the figures are made (``decided``) and
  how many reached a verdict (``resolved``: confirmed, false positive or reversed); and every
  decision recorded in the period, by kind.
- **errors**: verdicts given in the period, taken from ``review_decisions`` (never updated, so
  a past period's figures do not change later): a case is *confirmed* by an approval, or by a
  confirmation that no approval was asked for (the two-person rule off); a *false positive*
  by that decision; *reversed* by an upheld appeal. A case with several verdicts in the period
  counts with its last. Each case counts once under every signal type and every list among
  all its recorded matches' evidence. Errors are false positives plus reversals; the ratio
  is errors over all verdicts. A reversal counts in the period the appeal was decided.
- **reports**: made (``created_at``), filed (``finished_at``, even if retracted later),
  retracted and failed (their last change, ``updated_at``), pending (made in the period, not
  finished yet); the files of the reports filed, and whether a person had viewed each.
- **delays**: upload (the content's first upload, ``cases.first_seen_at``) to its first human
  decision, for cases first decided in the period; upload to report filed, for reports filed
  in the period. The match call itself acts at upload time, so blocking takes no time to
  speak of; these are the delays a person adds. Nearest-rank median and 90th percentile.
- **appeals**: received (``received_at``), upheld and denied (``decided_at``), still open
  (received in the period, undecided now), and the time from receipt to decision.

The package: `figures` (the values, with their JSON and CSV forms), `compute` (the queries
that make them from the store, in one read transaction), `page` (the HTML page and charts).
"""

from lightkeeper.reporting.transparency.compute import compute_figures
from lightkeeper.reporting.transparency.figures import (
    CONFIDENCE,
    CSV_COLUMNS,
    ActionFigures,
    AlgorithmErrors,
    AppealFigures,
    BankMatches,
    BankSignalMatches,
    DelayFigures,
    Distribution,
    ErrorCount,
    ErrorFigures,
    ListErrors,
    MatchFigures,
    ReportFigures,
    ReviewFigures,
    SignalMatches,
    TransparencyFigures,
    parse_utc,
    wilson_interval,
)

__all__ = [
    "CONFIDENCE",
    "CSV_COLUMNS",
    "ActionFigures",
    "AlgorithmErrors",
    "AppealFigures",
    "BankMatches",
    "BankSignalMatches",
    "DelayFigures",
    "Distribution",
    "ErrorCount",
    "ErrorFigures",
    "ListErrors",
    "MatchFigures",
    "ReportFigures",
    "ReviewFigures",
    "SignalMatches",
    "TransparencyFigures",
    "compute_figures",
    "parse_utc",
    "wilson_interval",
]
