# What Vault (or OpenBao) needs from the cloud to run in the cluster: an IAM role for its service
# account (IRSA) allowed to use the auto-unseal KMS key, so that no unseal key is ever typed in or
# stored. Vault itself is installed by its own chart with `seal "awskms"` pointing at that key.
locals {
  issuer = replace(var.oidc_provider_url, "https://", "")
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
  }
}

data "aws_iam_policy_document" "unseal" {
  statement {
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
    resources = [var.unseal_key_arn]
  }
}

resource "aws_iam_role" "vault" {
  name_prefix        = "${var.name}-vault-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "unseal" {
  name   = "kms-unseal"
  role   = aws_iam_role.vault.id
  policy = data.aws_iam_policy_document.unseal.json
}
