"""Planning: validation, segment expansion, name resolution, the planner and the compiler,
and the plan IR (``kql.planning.plan``) that the executor runs. Never touches the network."""
