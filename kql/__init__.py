"""kql — a query language and compiler for Kajabi customers."""
