output "cluster_name" {
  description = "Cluster name (aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.this.name
}

output "endpoint" {
  description = "API server endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "node_security_group_id" {
  description = "Security group the cluster gives its nodes: pass it to kafka and postgres as a client."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "OIDC provider for IAM roles of service accounts (the hub's and Vault's)."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_issuer_url" {
  description = "OIDC issuer URL of the cluster (for IRSA trust policies)."
  value       = aws_eks_cluster.this.identity[0].oidc[0].issuer
}
