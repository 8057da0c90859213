// The gateway server arrives with the RPC runtime and service issues; until then this says so plainly.
print("""
gateway: not implemented yet. This build has the foundation only: schemas in proto/, the code generator,
generated message types over protobuf-c, and the RPC model (RPCCore). See README.md for what works today.
""")
