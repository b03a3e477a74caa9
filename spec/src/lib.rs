//! Docker spec rules (see DOCKER-RULES.md).
