output "key_arns" {
  description = "ARN of each key by purpose: object-storage, kafka, postgres, kubernetes-secrets, vault-unseal."
  value       = { for purpose, key in aws_kms_key.this : purpose => key.arn }
}

output "vault_unseal_key_id" {
  description = "Key id for Vault/OpenBao's awskms seal stanza (seal \"awskms\" { kms_key_id = ... })."
  value       = aws_kms_key.this["vault-unseal"].key_id
}
