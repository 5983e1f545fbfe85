"""The actioner hop of the flow (DESIGN §1): what happens once content has matched.

It holds the policy (rules to actions), cases, the vault and webhooks:

- `lightkeeper.actions.policy`: which matches act, and the actions they call for;
- `lightkeeper.actions.signing`: the ``Lightkeeper-Signature`` scheme, for senders and
  receivers;
- `lightkeeper.actions.webhooks`: endpoints and the event outbox, kept in the bank store;
- `lightkeeper.actions.dispatcher`: the background sender, with retries and dead letters;
- `lightkeeper.actions.vault`: quarantined content, encrypted (`vault_crypto`), logged;
- `lightkeeper.actions.policy_store`: policies kept with their history, and dry runs;
- `lightkeeper.actions.cases`: cases per content and the recorded (acted-on) matches;
- `lightkeeper.actions.actioner`: a match result in, the policy's actions carried out once
  per request, and the recovery of requests a crash interrupted (docs/actions.md).
"""
