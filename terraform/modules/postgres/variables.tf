variable "name" {
  description = "Instance identifier and prefix of its subnet, parameter and security groups."
  type        = string
}

variable "engine_major_version" {
  description = "PostgreSQL major version (the hub is tested on 15)."
  type        = string
  default     = "15"
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m7g.large"
}

variable "storage_gb" {
  description = "Initial storage, in GiB."
  type        = number
  default     = 100
}

variable "max_storage_gb" {
  description = "Upper bound for storage autoscaling, in GiB."
  type        = number
  default     = 1000
}

variable "multi_az" {
  description = "Run a synchronous standby in another availability zone."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 35
}

variable "vpc_id" {
  description = "VPC holding the instance."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the instance (at least two availability zones)."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach PostgreSQL (the Kubernetes nodes')."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for storage encryption (the kms module's postgres key)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
