fn main() {
    println!("isc");
}
