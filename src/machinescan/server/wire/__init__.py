"""XML (UForge namespace) and JSON representations of resources, and content negotiation."""
