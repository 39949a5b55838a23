variable "name" {
  description = "Cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version (the chart's schemas are checked against 1.37)."
  type        = string
  default     = "1.33"
}

variable "subnet_ids" {
  description = "Private subnets for the control plane's interfaces and the nodes."
  type        = list(string)
}

variable "public_endpoint_cidrs" {
  description = "CIDRs allowed to reach the API server from the internet; empty keeps the endpoint private."
  type        = list(string)
  default     = []
}

variable "node_instance_types" {
  description = "Instance types of the default node group."
  type        = list(string)
  default     = ["m7i.xlarge"]
}

variable "node_min" {
  description = "Minimum (and initial) number of nodes."
  type        = number
  default     = 3
}

variable "node_max" {
  description = "Maximum number of nodes."
  type        = number
  default     = 6
}

variable "kms_key_arn" {
  description = "KMS key encrypting Kubernetes Secrets at rest (the kms module's kubernetes-secrets key)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
