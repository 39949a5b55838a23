variable "name" {
  description = "Prefix of every bucket name (<name>-lake, -archive, -evidence, -backups); globally unique."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting every object (the kms module's object-storage key)."
  type        = string
}

variable "evidence_retention_days" {
  description = "Days an object in the evidence bucket is locked against change and deletion (COMPLIANCE mode)."
  type        = number
  default     = 2557 # seven years
}

variable "archive_to_glacier_days" {
  description = "Days after which archived objects move to the GLACIER storage class."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every bucket."
  type        = map(string)
  default     = {}
}
