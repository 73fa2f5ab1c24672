"""Generated requests of every shape: linkplane answers with a deliberate status, never
INTERNAL or UNKNOWN, and an INVALID_ARGUMENT always names at least one field.

Besides hand-shaped requests for the richest messages, requests for every RPC of every served
service are generated from the service descriptors (so a new RPC or field is fuzzed with no
edit here), with adversarial strings (NUL and other control characters, deep nesting of filters
and JSON, over-long values, non-canonical request ids), extreme numbers, and raw bytes that are
not a valid message at all.
"""

from __future__ import annotations

import uuid

import grpc
from google.protobuf import descriptor, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2  # noqa: F401 - puts it in the default pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkplane.server.api import authz
from linkplane.server.api import server as api_server
from linkplane.v1 import (
    connection_pb2,
    consumer_service_pb2,
    provider_service_pb2,
    service_pb2,
)
from tests.api.conftest import (
    CONSUMER_ID,
    PROVIDER_ID,
    connection_to,
    details,
    managed_service,
    register_accounts,
)

DELIBERATE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # WaitOperation on a live operation, an open Watch
}

_ID = "9b2d5c3e-8f1a-4c2b-9d3e-0123456789ab"
# Values that once reached Postgres, a recursive parser or an integer conversion unchecked.
adversarial = st.sampled_from(
    [
        "a\x00",
        'display_name = "a\x00"',
        "operations/a\x00",
        "x\x01\x1b[31m\x7f\x85",
        "(" * 300 + "state = ACTIVE" + ")" * 300,
        "NOT (" * 100 + "state = ACTIVE" + ")" * 100,
        "labels = x",
        '{"a":' + "[" * 3000 + "]" * 3000 + "}",
        '{"a": ' + "9" * 5000 + "}",
        "a" * 300,
        "x" * 30_000,
        "us-" + "east" * 20 + "-1",
        "-" * 40 + _ID.replace("-", ""),
        _ID.upper(),
        "{" + _ID + "}",
    ]
)
text = st.one_of(
    adversarial,
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            "projects/fuzz",
            "projects/fuzz/accounts/111111111111",
            "us-east-1",
            "*",
            "subnet-0123456789abcdef0",
            "vpc-0123456789abcdef0",
            "arn:aws:iam::111111111111:root",
            "projects/fuzz/services/a",
            "com.amazonaws.us-east-1.sqs",
            "projects/Bad/x",
        ]
    ),
)
enum_number = st.one_of(
    st.integers(min_value=-5, max_value=2**31 - 1), st.sampled_from([-(2**31), 2**31 - 1])
)

listeners = st.builds(
    service_pb2.Listener,
    port=st.integers(-10, 70000),
    protocol=enum_number,
    target_port=st.integers(-10, 70000),
)
services = st.builds(
    service_pb2.Service,
    provider_account=text,
    region=text,
    display_name=text,
    load_balancer=st.one_of(
        st.builds(service_pb2.LoadBalancer),
        st.builds(
            service_pb2.LoadBalancer,
            managed=st.builds(
                service_pb2.ManagedLoadBalancer,
                subnet_ids=st.lists(text, max_size=3),
                listeners=st.lists(listeners, max_size=3),
                targets=st.lists(st.builds(service_pb2.Target, id=text), max_size=2),
            ),
        ),
        st.builds(
            service_pb2.LoadBalancer,
            adopted=st.builds(
                service_pb2.AdoptedLoadBalancers,
                network_load_balancer_arns=st.lists(text, max_size=2),
            ),
        ),
    ),
    acceptance_policy=st.builds(
        service_pb2.AcceptancePolicy,
        mode=enum_number,
        accept_rules=st.lists(
            st.builds(service_pb2.AcceptRule, principal=text, connection_limit=st.integers(-3, 3)),
            max_size=2,
        ),
        reject_principals=st.lists(text, max_size=2),
    ),
    allowed_principals=st.lists(text, max_size=3),
    private_dns_name=text,
    supported_ip_address_types=st.lists(enum_number, max_size=2),
    supported_regions=st.lists(text, max_size=2),
    labels=st.dictionaries(text, text, max_size=2),
)
connections = st.builds(
    connection_pb2.Connection,
    service=text,
    consumer_account=text,
    region=text,
    vpc_id=text,
    subnet_ids=st.lists(text, max_size=3),
    security_group_ids=st.lists(text, max_size=2),
    ip_address_type=enum_number,
    policy_document=text,
    request_message=text,
    labels=st.dictionaries(text, text, max_size=2),
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(error: grpc.aio.AioRpcError | None) -> None:
    if error is None:
        return
    assert error.code() in DELIBERATE, (error.code(), error.details())
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        assert details(error)["fields"], error.details()


async def call(coroutine) -> grpc.aio.AioRpcError | None:
    try:
        await coroutine
    except grpc.aio.AioRpcError as error:
        return error
    return None


@FUZZ
@given(parent=text, service_id=text, service=services, request_id=text, validate_only=st.booleans())
async def test_publish_service_never_fails_internally(
    provider, parent, service_id, service, request_id, validate_only
):
    check(
        await call(
            provider.PublishService(
                provider_service_pb2.PublishServiceRequest(
                    parent=parent,
                    service_id=service_id,
                    service=service,
                    request_id=request_id,
                    validate_only=validate_only,
                )
            )
        )
    )


@FUZZ
@given(parent=text, connection=connections, page_size=st.integers(-5, 5000), filter_=text)
async def test_connections_never_fail_internally(consumer, parent, connection, page_size, filter_):
    check(
        await call(
            consumer.CreateConnection(
                consumer_service_pb2.CreateConnectionRequest(
                    parent=parent, connection=connection, validate_only=True
                )
            )
        )
    )
    check(
        await call(
            consumer.ListConnections(
                consumer_service_pb2.ListConnectionsRequest(
                    parent=parent, page_size=page_size, filter=filter_, page_token=filter_
                )
            )
        )
    )


# ---- every RPC, from the descriptors --------------------------------------------------------

_INT_RANGES = {
    descriptor.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_ENUM: (-(2**31), 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    descriptor.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    descriptor.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    descriptor.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    descriptor.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    # Often the extremes and small values, where conversions and comparisons break.
    candidates = (low, high, 0, 1, -1, 2**31 - 1, 2**31, 2**62, -(2**62))
    edges = sorted({v for v in candidates if low <= v <= high})
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _scalar(fd) -> st.SearchStrategy:
    if fd.type == descriptor.FieldDescriptor.TYPE_STRING:
        return text
    if fd.type == descriptor.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if fd.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type in (descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if fd.type == descriptor.FieldDescriptor.TYPE_FLOAT else 64)
    return _integers(*_INT_RANGES[fd.type])


def _field(fd, depth: int) -> st.SearchStrategy | None:
    """Values for one field (a list for repeated fields, a dict for maps); None: skip it."""
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key_fd, value_fd = (fd.message_type.fields_by_name[k] for k in ("key", "value"))
        if value_fd.message_type is not None:
            return None
        return st.dictionaries(_scalar(key_fd), _scalar(value_fd), max_size=3)
    if fd.message_type is not None:
        if depth >= 3:
            return None
        child = _message(fd.message_type, depth + 1)
        return st.lists(child, max_size=2) if fd.is_repeated else child
    return st.lists(_scalar(fd), max_size=3) if fd.is_repeated else _scalar(fd)


def _message(message_descriptor, depth: int = 0) -> st.SearchStrategy:
    cls = message_factory.GetMessageClass(message_descriptor)
    optional = {}
    for fd in message_descriptor.fields:
        strategy = _field(fd, depth)
        if strategy is not None:
            optional[fd.name] = strategy
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: cls(**values))


def _methods() -> list:
    pool = descriptor_pool.Default()
    return [
        method
        for name in api_server.SERVICE_NAMES
        for method in pool.FindServiceByName(name).methods
        if not method.client_streaming
    ]


METHODS = _methods()
# Health and reflection: served anonymously, by grpcio's own servicers, behind the same boundary.
ANONYMOUS = [
    method
    for name in authz.EXEMPT_SERVICES
    for method in descriptor_pool.Default().FindServiceByName(name).methods
]
# A length-delimited field 1 claiming far more bytes than follow: no message parses from it.
TRUNCATED = bytes([0x0A, 0xFF, 0xFF, 0xFF, 0x0F]) + b"abc"
EVERY_RPC = settings(FUZZ, max_examples=150)


def _identity(value: bytes) -> bytes:
    return value


async def _call_raw(channel, method, payload: bytes) -> grpc.aio.AioRpcError | None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming:  # reflection: one request, the first answer
            both = channel.stream_stream(
                path, request_serializer=_identity, response_deserializer=_identity
            )(iter([payload]), timeout=2.0)
            async for _ in both:
                break
            both.cancel()
        elif method.server_streaming:
            stream = channel.unary_stream(
                path, request_serializer=_identity, response_deserializer=_identity
            )(payload, timeout=1.0)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(
                path, request_serializer=_identity, response_deserializer=_identity
            )(payload, timeout=2.0)
    except grpc.aio.AioRpcError as error:
        return error
    return None


@EVERY_RPC
@given(data=st.data())
async def test_every_rpc_answers_generated_requests_deliberately(channel, data):
    method = data.draw(st.sampled_from(METHODS), label="method")
    request = data.draw(_message(method.input_type), label="request")
    check(await _call_raw(channel, method, request.SerializeToString()))


@EVERY_RPC
@given(method=st.sampled_from(METHODS), payload=st.binary(min_size=1, max_size=200))
async def test_every_rpc_answers_raw_bytes_deliberately(channel, method, payload):
    check(await _call_raw(channel, method, payload))


def _plausible(field: str, method: str, project: str) -> str:
    """A valid-looking value for a string field, so that one spoiled field is what is tested."""
    collection = next((c for c in ("Service", "Connection", "Account") if c in method), "")
    name = {
        "Service": f"projects/{project}/services/svc-a",
        "Connection": f"projects/{project}/connections/conn-a",
        "Account": f"projects/{project}/accounts/{PROVIDER_ID}",
    }.get(collection, f"projects/{project}")
    if "Operation" in method:
        name = "operations/" + _ID.replace("-", "")
    values = {
        "name": name,
        "parent": f"projects/{project}/services/svc-a"
        if method == "ListServiceConnections"
        else ("operations" if "Operation" in method else f"projects/{project}"),
        "resource": f"projects/{project}",
        "service": f"projects/{project}/services/svc-a",
        "provider_account": f"projects/{project}/accounts/{PROVIDER_ID}",
        "consumer_account": f"projects/{project}/accounts/{CONSUMER_ID}",
        "account_id": "333333333333",
        "region": "us-east-1",
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": "subnet-0123456789abcdef0",
        "security_group_ids": "sg-0123456789abcdef0",
        "endpoint_ids": "vpce-0123456789abcdef0",
        "request_id": str(uuid.uuid4()),
        "id": "10.0.0.1",
        "allowed_principals": CONSUMER_ID,
        "principal": CONSUMER_ID,
        "policy_document": '{"Statement": []}',
        "paths": "display_name",
    }
    return values.get(field, "")


def _fill_plausible(message, method: str, project: str, depth: int = 0) -> None:
    for fd in message.DESCRIPTOR.fields:
        if fd.containing_oneof is not None and fd.index != fd.containing_oneof.fields[0].index:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            continue
        if fd.message_type is not None:
            if depth < 4 and not fd.message_type.full_name.startswith("google."):
                child = getattr(message, fd.name).add() if fd.is_repeated else None
                child = child if child is not None else getattr(message, fd.name)
                _fill_plausible(child, method, project, depth + 1)
                child.SetInParent()
        elif fd.type == descriptor.FieldDescriptor.TYPE_STRING:
            value = _plausible(fd.name, method, project)
            if value and fd.is_repeated:
                getattr(message, fd.name).append(value)
            elif value:
                setattr(message, fd.name, value)
        elif fd.type == descriptor.FieldDescriptor.TYPE_INT32 and "port" in fd.name:
            setattr(message, fd.name, 443)


def _leaves(message) -> list:
    out = []
    for fd in message.DESCRIPTOR.fields:
        if fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            children = getattr(message, fd.name) if fd.is_repeated else [getattr(message, fd.name)]
            for child in children:
                out += _leaves(child)
            if not fd.is_repeated and not children[0].ListFields():
                out.append((message, fd))  # an empty sub-message: generate all of it
        else:
            out.append((message, fd))
    return out


_PREPARED: set[str] = set()


async def _prepare(accounts, provider, consumer, project: str) -> None:
    """Accounts, a service and a connection for the plausible names to refer to."""
    if project in _PREPARED:
        return
    await register_accounts(accounts, project)
    await provider.PublishService(
        provider_service_pb2.PublishServiceRequest(
            parent=f"projects/{project}", service_id="svc-a", service=managed_service(project)
        )
    )
    service = f"projects/{project}/services/svc-a"
    await consumer.CreateConnection(
        consumer_service_pb2.CreateConnectionRequest(
            parent=f"projects/{project}",
            connection_id="conn-a",
            connection=connection_to(project, service),
        )
    )
    _PREPARED.add(project)


@settings(FUZZ, max_examples=300)
@given(data=st.data())
async def test_every_rpc_with_one_spoiled_field_answers_deliberately(
    channel, accounts, provider, consumer, project, data
):
    """A plausible request with one or two fields given a generated (often adversarial)
    value, so the value travels as far as it can: validate_only paths, SQL, JSON parsers."""
    await _prepare(accounts, provider, consumer, project)
    method = data.draw(st.sampled_from(METHODS), label="method")
    request = message_factory.GetMessageClass(method.input_type)()
    _fill_plausible(request, method.name, project)
    for _ in range(data.draw(st.integers(1, 2), label="spoiled")):
        owner, fd = data.draw(st.sampled_from(_leaves(request)), label="field")
        strategy = _field(fd, 1)
        if strategy is None:
            continue
        value = data.draw(strategy, label=fd.name)
        if fd.message_type is not None and not fd.is_repeated:
            getattr(owner, fd.name).CopyFrom(value)
        elif isinstance(value, dict):
            getattr(owner, fd.name).update(value)
        elif fd.is_repeated:
            getattr(owner, fd.name).extend(value)
        else:
            setattr(owner, fd.name, value)
    check(await _call_raw(channel, method, request.SerializeToString()))


def test_descriptor_fuzzing_covers_every_served_rpc():
    served = {m.containing_service.full_name for m in METHODS}
    assert set(api_server.SERVICE_NAMES) <= served
    assert len(METHODS) >= 25
    assert str(uuid.UUID(_ID)) == _ID


async def _serving(channel) -> int:
    health = health_pb2_grpc.HealthStub(channel)
    return (await health.Check(health_pb2.HealthCheckRequest(), timeout=5.0)).status


async def test_health_and_reflection_answer_malformed_bytes_invalid_argument(channel):
    """grpc.aio's default for bytes that do not parse is UNKNOWN "Unexpected DecodeError";
    the anonymous services answer like linkplane's own RPCs, and stay SERVING after."""
    assert {m.containing_service.full_name for m in ANONYMOUS} == set(authz.EXEMPT_SERVICES)
    for method in ANONYMOUS:
        error = await _call_raw(channel, method, TRUNCATED)
        assert error is not None, method.full_name
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.full_name, error)
        assert details(error)["reason"] == "MALFORMED_REQUEST"
    assert await _serving(channel) == health_pb2.HealthCheckResponse.SERVING


@EVERY_RPC
@given(data=st.data())
async def test_health_and_reflection_answer_fuzzed_requests_deliberately(channel, data):
    method = data.draw(st.sampled_from(ANONYMOUS), label="method")
    if data.draw(st.booleans(), label="raw"):
        payload = data.draw(st.binary(min_size=1, max_size=200), label="payload")
    else:
        payload = data.draw(_message(method.input_type), label="request").SerializeToString()
    check(await _call_raw(channel, method, payload))
    assert await _serving(channel) == health_pb2.HealthCheckResponse.SERVING
