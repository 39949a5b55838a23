variable "name" {
  description = "Cluster name."
  type        = string
}

variable "kafka_version" {
  description = "MSK Kafka version (a KRaft one, e.g. 3.9.x.kraft)."
  type        = string
  default     = "3.9.x.kraft"
}

variable "broker_count" {
  description = "Number of brokers; a multiple of the number of subnets (one per availability zone)."
  type        = number
  default     = 3
}

variable "instance_type" {
  description = "Broker instance type."
  type        = string
  default     = "kafka.m7g.large"
}

variable "volume_size_gb" {
  description = "EBS storage per broker, in GiB."
  type        = number
  default     = 500
}

variable "vpc_id" {
  description = "VPC holding the brokers."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the brokers, one per availability zone."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to reach the brokers (the Kubernetes nodes')."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest (the kms module's kafka key)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
