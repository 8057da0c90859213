// Use cases speak in domain types: whoever imports the application layer gets the domain too.
@_exported import GatewayDomain
