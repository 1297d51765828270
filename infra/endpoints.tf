# VPC endpoints: AWS traffic of the Batch hosts and the Fargate tasks stays in the VPC.
#
# - S3 gateway endpoint (free): the lake, and the image layers, which ECR serves from S3. This is what takes
#   a new Spot host's image pull (hundreds of MB) off the NAT's per-GB processing charge.
# - Interface endpoints (var.interface_endpoints, ~7.30 USD per month per AZ each): ECR's API and registry
#   (auth, manifests) and CloudWatch Logs by default; Secrets Manager, STS, Batch... on request. With private
#   DNS the service's usual name resolves to them: no client changes. They make pulls and logs independent of
#   the NAT; [] turns them off where the NAT is enough.
#
# Endpoint policies stay AWS's default (full access): the VPC is shared with whatever else runs in it, and
# the roles' own policies are what scope this stack.

data "aws_route_table" "private" {
  for_each  = var.s3_gateway_endpoint && var.private_route_table_ids == null ? toset(var.private_subnet_ids) : toset([])
  subnet_id = each.value
}

locals {
  endpoint_service_prefix = "${data.aws_partition.current.reverse_dns_prefix}.${var.region}"
  private_route_table_ids = sort(distinct(
    var.private_route_table_ids != null ? var.private_route_table_ids : [for table in data.aws_route_table.private : table.id]
  ))
}

resource "aws_vpc_endpoint" "s3" {
  count             = var.s3_gateway_endpoint ? 1 : 0
  vpc_id            = var.vpc_id
  service_name      = "${local.endpoint_service_prefix}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.private_route_table_ids
  tags              = { Name = "${local.name}-s3" }
}

resource "aws_security_group" "endpoints" {
  count       = length(var.interface_endpoints) > 0 ? 1 : 0
  name        = "${local.name}-vpc-endpoints"
  description = "Interface VPC endpoints: HTTPS from the run workers and the control plane"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from" {
  for_each = length(var.interface_endpoints) > 0 ? {
    control_plane = aws_security_group.control_plane.id
    run_worker    = aws_security_group.run_worker.id
  } : {}
  security_group_id            = aws_security_group.endpoints[0].id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  description                  = "HTTPS to the interface endpoints from ${each.key}"
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = toset(var.interface_endpoints)
  vpc_id              = var.vpc_id
  service_name        = "${local.endpoint_service_prefix}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  # One network interface per subnet: the private subnets must be in distinct AZs.
  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.endpoints[0].id]
  tags               = { Name = "${local.name}-${each.value}" }
}
