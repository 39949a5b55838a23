variable "region" {
  description = "AWS region."
  type        = string
}

variable "name" {
  description = "Name of the environment, prefix of every resource (e.g. hub-prod)."
  type        = string
}

variable "bucket_prefix" {
  description = "Globally unique prefix of the S3 buckets (e.g. acme-hub-prod)."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Existing private subnets, one per availability zone (three recommended)."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API from outside the VPC; empty keeps it private."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { "app" = "hub" }
}
