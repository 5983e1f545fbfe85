"""Review: the people who look at cases, and what they decide (DESIGN §1, the "review" hop).

After the actioner records a case (one content, every copy: `lightkeeper.actions.cases`),
nothing is reported until a person has decided it. The flow:

1. **Who** (`accounts`, `sessions`): reviewer accounts with a role (reviewer, senior, admin),
   Argon2id passwords or a trusted reverse-proxy sign-in, and sessions stored as token digests.
2. **What needs them** (`decisions.review_queue`): open cases with a review priority, most
   urgent then oldest, that still need this person.
3. **Looking** (`exposure`): a blurred derivative by default; a clear image only on an
   explicit reveal, counted against a daily cap and recorded in the audit trail, which is what
   a report's ``fileViewedByEsp`` is read from (`exposure.was_viewed`).
4. **Deciding** (`decisions.decide`): confirm with a classification, false positive,
   escalate; under the two-person rule a second person approves or disapproves a
   confirmation. Each decision is one transaction: the review state, the history, the audit
   event and the platform's ``decision`` webhook event.
5. **Being wrong** (`feedback`): a false positive suppresses the entries that matched for this
   platform (disabled, and added to an allow bank) and records negative feedback to export to
   the list's provider.
6. **Being contested** (`appeals`): the platform files a user's appeal; a senior reviewer
   upholds it (the case is reversed, the platform told to reinstate, the entries suppressed)
   or denies it.

`settings` holds the knobs (``LIGHTKEEPER_REVIEW_*``). Only a confirmed case can be reported
(`lightkeeper.reporting`). See docs/review.md.
"""
