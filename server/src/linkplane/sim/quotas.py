"""Service Quotas (``service-quotas``): GetServiceQuota and GetAWSDefaultServiceQuota.

linkplane reads the per-VPC interface endpoint quota (service ``vpc``, ``L-29B6F2EB``) instead of
assuming AWS's default of 50, because AWS raises it per account on request. moto knows the
``vpc`` defaults but not an account's applied value nor GetAWSDefaultServiceQuota; the applied
value is set through the admin API (``PUT /_sim/quotas``, ``SimHandle.set_quota``) and is what
CreateVpcEndpoint enforces. Served like every other service through the gateway, so an
aiobotocore ``service-quotas`` client with ``endpoint_url`` = the simulator works, assumed-role
accounts included.
"""

import copy
import json
from typing import Any

from moto.servicequotas.exceptions import NoSuchResource
from moto.servicequotas.resources.default_quotas.vpc import VPC_DEFAULT_QUOTAS
from moto.servicequotas.responses import ServiceQuotasResponse

from linkplane.sim import world

_moto_get_service_quota = ServiceQuotasResponse.get_service_quota


def default_quota(service_code: str, quota_code: str) -> dict[str, Any]:
    """AWS's default for a quota (moto's table), or NoSuchResourceException."""
    if service_code == "vpc":
        for quota in VPC_DEFAULT_QUOTAS:
            if quota["QuotaCode"] == quota_code:
                return copy.deepcopy(quota)
    raise NoSuchResource


def default_value(service_code: str, quota_code: str) -> float:
    return float(default_quota(service_code, quota_code)["Value"])


def _request(response: ServiceQuotasResponse) -> tuple[str, str]:
    params = json.loads(response.body or "{}")
    return str(params.get("ServiceCode")), str(params.get("QuotaCode"))


def get_service_quota(self: ServiceQuotasResponse) -> str:
    """The account's applied value (the default where none was applied)."""
    service_code, quota_code = _request(self)
    quota = default_quota(service_code, quota_code)
    applied = world.current().quota(self.current_account, self.region, service_code, quota_code)
    if applied is not None:
        quota["Value"] = applied
    quota["QuotaArn"] = (
        f"arn:aws:servicequotas:{self.region}:{self.current_account}:{service_code}/{quota_code}"
    )
    return json.dumps({"Quota": quota})


def get_aws_default_service_quota(self: ServiceQuotasResponse) -> str:
    service_code, quota_code = _request(self)
    quota = default_quota(service_code, quota_code)
    quota["QuotaArn"] = f"arn:aws:servicequotas:{self.region}::{service_code}/{quota_code}"
    return json.dumps({"Quota": quota})


def install() -> None:
    setattr(ServiceQuotasResponse, "get_service_quota", get_service_quota)  # noqa: B010
    setattr(  # noqa: B010
        ServiceQuotasResponse, "get_aws_default_service_quota", get_aws_default_service_quota
    )


def uninstall() -> None:
    setattr(ServiceQuotasResponse, "get_service_quota", _moto_get_service_quota)  # noqa: B010
    if "get_aws_default_service_quota" in ServiceQuotasResponse.__dict__:
        delattr(ServiceQuotasResponse, "get_aws_default_service_quota")
