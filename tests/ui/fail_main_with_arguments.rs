fn main() {}

#[evloop::main]
async fn entry(n: u32) -> u32 {
    n
}
