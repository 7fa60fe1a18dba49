#[evloop::main]
fn main() {}
