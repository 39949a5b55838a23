# One production environment: every module wired together. The VPC and its private subnets exist
# already (they belong to the network team); pass their ids.
module "kms" {
  source = "../../modules/kms"
  name   = var.name
  tags   = var.tags
}

module "kubernetes" {
  source                = "../../modules/kubernetes"
  name                  = var.name
  subnet_ids            = var.private_subnet_ids
  public_endpoint_cidrs = var.admin_cidrs
  kms_key_arn           = module.kms.key_arns["kubernetes-secrets"]
  tags                  = var.tags
}

module "kafka" {
  source                    = "../../modules/kafka"
  name                      = var.name
  vpc_id                    = var.vpc_id
  subnet_ids                = var.private_subnet_ids
  client_security_group_ids = [module.kubernetes.node_security_group_id]
  kms_key_arn               = module.kms.key_arns["kafka"]
  tags                      = var.tags
}

module "postgres" {
  source                    = "../../modules/postgres"
  name                      = var.name
  vpc_id                    = var.vpc_id
  subnet_ids                = var.private_subnet_ids
  client_security_group_ids = [module.kubernetes.node_security_group_id]
  kms_key_arn               = module.kms.key_arns["postgres"]
  tags                      = var.tags
}

module "object_storage" {
  source      = "../../modules/object_storage"
  name        = var.bucket_prefix
  kms_key_arn = module.kms.key_arns["object-storage"]
  tags        = var.tags
}

module "vault" {
  source            = "../../modules/vault"
  name              = var.name
  unseal_key_arn    = module.kms.key_arns["vault-unseal"]
  oidc_provider_arn = module.kubernetes.oidc_provider_arn
  oidc_provider_url = module.kubernetes.oidc_issuer_url
  tags              = var.tags
}
