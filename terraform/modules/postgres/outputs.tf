output "endpoint" {
  description = "host:port of the instance; the hub's HUB_VIEWS_SQL_URL is postgresql+psycopg://USER:PASSWORD@<endpoint>/hub?sslmode=require (kept in Vault, never in a chart)."
  value       = aws_db_instance.this.endpoint
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret holding the generated master password (to create the hub's own role)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.postgres.id
}
