# The hub's object storage: the lake, the cold archive, write-once evidence (checkpoint witnesses,
# evidence packs) and backups. Private, encrypted with the object-storage KMS key, versioned.
locals {
  buckets = toset(["lake", "archive", "evidence", "backups"])
}

resource "aws_s3_bucket" "this" {
  for_each            = local.buckets
  bucket              = "${var.name}-${each.key}"
  object_lock_enabled = each.key == "evidence"
  force_destroy       = false
  tags                = merge(var.tags, { "hub/bucket" = each.key })
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = aws_s3_bucket.this
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

# Write-once evidence: checkpoints and evidence packs cannot be changed or deleted before their
# retention ends, not even by the account's root user (COMPLIANCE mode).
resource "aws_s3_bucket_object_lock_configuration" "evidence" {
  bucket = aws_s3_bucket.this["evidence"].id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.evidence_retention_days
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.this["archive"].id
  rule {
    id     = "cold-tier"
    status = "Enabled"
    filter {}
    transition {
      days          = var.archive_to_glacier_days
      storage_class = "GLACIER"
    }
  }
}
