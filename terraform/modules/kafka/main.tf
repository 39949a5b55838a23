# Managed Kafka (Amazon MSK) in KRaft mode: TLS between clients and brokers, IAM authentication,
# encryption at rest with the kafka KMS key, no auto-created topics (the hub creates its own).
resource "aws_security_group" "kafka" {
  name_prefix = "${var.name}-kafka-"
  description = "Kafka brokers of ${var.name}: reachable from the cluster's nodes only."
  vpc_id      = var.vpc_id
  tags        = var.tags

  ingress {
    description     = "Kafka TLS + IAM from the hub's nodes"
    from_port       = 9098
    to_port         = 9098
    protocol        = "tcp"
    security_groups = var.client_security_group_ids
  }
}

resource "aws_msk_configuration" "this" {
  name           = "${var.name}-hub"
  kafka_versions = [var.kafka_version]
  server_properties = join("\n", [
    "auto.create.topics.enable=false",
    "default.replication.factor=${min(3, var.broker_count)}",
    "min.insync.replicas=${min(2, var.broker_count)}",
    "message.max.bytes=16777216",
    "transaction.state.log.replication.factor=${min(3, var.broker_count)}",
    "transaction.state.log.min.isr=${min(2, var.broker_count)}",
  ])
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  tags                   = var.tags

  broker_node_group_info {
    instance_type   = var.instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.kafka.id]
    storage_info {
      ebs_storage_info {
        volume_size = var.volume_size_gb
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = var.kms_key_arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  client_authentication {
    sasl {
      iam = true
    }
  }
}
