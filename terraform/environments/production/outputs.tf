output "kafka_bootstrap_brokers" {
  description = "HUB_KAFKA_BOOTSTRAP_SERVERS for the chart's settings."
  value       = module.kafka.bootstrap_brokers
}

output "postgres_endpoint" {
  description = "Host:port for HUB_VIEWS_SQL_URL (stored in Vault at kv/data/hub, postgres_url)."
  value       = module.postgres.endpoint
}

output "bucket_names" {
  description = "Bucket by role: lake, archive, evidence (object-locked), backups."
  value       = module.object_storage.bucket_names
}

output "cluster_name" {
  description = "EKS cluster to install deploy/helm/hub into."
  value       = module.kubernetes.cluster_name
}

output "vault_role_arn" {
  description = "IAM role for Vault's service account (auto-unseal with KMS)."
  value       = module.vault.role_arn
}

output "vault_unseal_key_id" {
  description = "KMS key id for Vault's seal \"awskms\" stanza."
  value       = module.kms.vault_unseal_key_id
}
