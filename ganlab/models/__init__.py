"""Networks, one family per module. Discriminators return raw logits."""
