"""What a finished search recommends: the pick (CEM's mean, the best trial, trial N), its
comparison against the other candidates on held-out requests, and the exported file."""
