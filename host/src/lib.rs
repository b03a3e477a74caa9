//! Real host facts for dockerish-spec.
