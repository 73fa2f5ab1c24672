"""The wire shapes shared by the API and the reconciler: storage rows and domain errors as
protobuf messages and google.rpc statuses. Both layers above import it; it imports neither."""
