// The gateway server arrives with the auth and service issues; until then this says so plainly.
print("""
gateway: not implemented yet. This build has the foundation and the gRPC runtime: schemas in proto/, the
code generator, generated message types over protobuf-c, and a gRPC server and client on libnghttp2.
`swift run interop-server --port 50051` serves the gRPC interop and health services. See README.md.
""")
