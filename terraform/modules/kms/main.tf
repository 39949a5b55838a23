# Customer-managed KMS keys: one per purpose, so that revoking one (e.g. object storage) leaves the
# others working, and one for Vault/OpenBao auto-unseal.
locals {
  purposes = toset(["object-storage", "kafka", "postgres", "kubernetes-secrets", "vault-unseal"])
}

resource "aws_kms_key" "this" {
  for_each                = local.purposes
  description             = "${var.name} ${each.key}"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_days
  tags                    = merge(var.tags, { "hub/purpose" = each.key })
}

resource "aws_kms_alias" "this" {
  for_each      = local.purposes
  name          = "alias/${var.name}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}
