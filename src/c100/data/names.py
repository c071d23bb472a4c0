"""Names of the data pipeline's choices, torch-free so that the config and the CLI can list them
without importing torch (`c100 train --help` stays fast)."""

# Strong augmentation policies after crop/flip (c100.data.policies); "none" = crop/flip only.
POLICIES = ("none", "autoaugment", "randaugment", "trivialaugment")
