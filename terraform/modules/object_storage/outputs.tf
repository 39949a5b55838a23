output "bucket_names" {
  description = "Bucket name by role: lake, archive, evidence, backups."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.bucket }
}

output "bucket_arns" {
  description = "Bucket ARN by role, for IAM policies (e.g. the hub's IRSA role)."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.arn }
}
