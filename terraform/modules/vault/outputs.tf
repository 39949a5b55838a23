output "role_arn" {
  description = "IAM role for Vault's service account (annotation eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.vault.arn
}
