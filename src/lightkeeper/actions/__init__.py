"""The actioner hop of the flow (DESIGN §1): what happens once content has matched.

It holds the policy (rules to actions), cases, the vault and webhooks; so far:

- `lightkeeper.actions.policy`: which matches act, and the actions they call for;
- `lightkeeper.actions.signing`: the ``Lightkeeper-Signature`` scheme, for senders and
  receivers;
- `lightkeeper.actions.webhooks`: endpoints and the event outbox, kept in the bank store;
- `lightkeeper.actions.dispatcher`: the background sender, with retries and dead letters.
- `lightkeeper.actions.vault`: quarantined content, encrypted (`vault_crypto`), logged.
"""
