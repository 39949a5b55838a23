terraform {
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }
  # Configure a remote state backend here (e.g. backend "s3" { ... }) before the first apply.
}

provider "aws" {
  region = var.region
  default_tags {
    tags = var.tags
  }
}
