"""Who may do what on the feed: users, API keys and their scopes (:mod:`.keys`), two-factor authentication
(:mod:`.twofactor`) and registered signing certificates (:mod:`.certificates`). No HTTP here."""
