variable "name" {
  description = "Prefix of the IAM role's name."
  type        = string
}

variable "unseal_key_arn" {
  description = "KMS key Vault auto-unseals with (the kms module's vault-unseal key)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "The cluster's OIDC provider (the kubernetes module's oidc_provider_arn)."
  type        = string
}

variable "oidc_provider_url" {
  description = "The cluster's OIDC issuer URL (https://oidc.eks.<region>.amazonaws.com/id/...)."
  type        = string
}

variable "namespace" {
  description = "Namespace Vault runs in."
  type        = string
  default     = "vault"
}

variable "service_account" {
  description = "Vault's service account name."
  type        = string
  default     = "vault"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
