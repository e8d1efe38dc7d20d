// Intentionally empty: present so that the feature pins in Cargo.toml's
// [build-dependencies] are part of every build (see the comment there).
fn main() {}
