"""The gRPC API layer: servicers, converters between protobuf and domain, error mapping.

Handlers validate input (domain.validation), persist desired state (storage) in one
transaction with its Operation, request-id record and audit entry, and return. They never call
AWS: the reconciler does, asynchronously.
"""
