variable "name" {
  description = "Prefix of every key alias (alias/<name>-<purpose>)."
  type        = string
}

variable "deletion_window_days" {
  description = "Days a scheduled key deletion waits before it happens (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_days >= 7 && var.deletion_window_days <= 30
    error_message = "deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags added to every key."
  type        = map(string)
  default     = {}
}
