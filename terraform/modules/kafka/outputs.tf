output "bootstrap_brokers" {
  description = "TLS + IAM bootstrap servers: the hub's HUB_KAFKA_BOOTSTRAP_SERVERS."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "cluster_arn" {
  description = "Cluster ARN, for the IAM policy of the hub's role (kafka-cluster:* actions)."
  value       = aws_msk_cluster.this.arn
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.kafka.id
}
