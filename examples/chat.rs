//! A line-based chat server: every line a client sends goes to every other client.
//!
//! ```sh
//! cargo run --example chat -- --demo          # three bots talk, then it exits
//! cargo run --example chat -- --port 7879      # a server until Ctrl-C; try `nc 127.0.0.1 7879`
//! ```
//!
//! Options: `--port N` (default 7879, or 0 — any free port — with `--demo`), `--demo`,
//! `--help`.
//!
//! Many tasks share the room through `Rc<RefCell<…>>`: tasks created with
//! `create_task` run on the loop's thread and need no `Send`. No borrow is held across
//! an `.await`: a broadcast first copies the list of writers, then writes.

#[path = "common/args.rs"]
mod args;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{OwnedWriteHalf, TcpListener, TcpStream};
use evloop::{Error, create_task, gather, time::sleep};

type Writer = Rc<OwnedWriteHalf<TcpStream>>;

#[derive(Default)]
struct Room {
    next_id: u32,
    members: BTreeMap<u32, (String, Writer)>,
}

type SharedRoom = Rc<RefCell<Room>>;

async fn broadcast(room: &SharedRoom, from: u32, line: &str) {
    let (name, targets): (String, Vec<Writer>) = {
        let room = room.borrow();
        let name = room
            .members
            .get(&from)
            .map_or_else(|| "?".into(), |(n, _)| n.clone());
        let targets = room
            .members
            .iter()
            .filter(|(id, _)| **id != from)
            .map(|(_, (_, w))| w.clone())
            .collect();
        (name, targets)
    };
    let message = format!("{name}: {line}\n");
    for writer in targets {
        // A member that left meanwhile just fails this write.
        let _ = writer.write_all(message.as_bytes()).await;
    }
}

async fn serve_client(room: SharedRoom, stream: TcpStream) -> Result<(), Error> {
    let peer = stream.peer_addr()?;
    let (reader, writer) = stream.into_split();
    let id = {
        let mut room = room.borrow_mut();
        room.next_id += 1;
        let id = room.next_id;
        room.members
            .insert(id, (format!("guest{id}"), Rc::new(writer)));
        id
    };
    broadcast(&room, id, &format!("joined from {peer}")).await;
    let mut pending = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            if let Some(name) = line.strip_prefix("/nick ") {
                if let Some(member) = room.borrow_mut().members.get_mut(&id) {
                    member.0 = name.to_string();
                }
            } else if !line.is_empty() {
                broadcast(&room, id, &line).await;
            }
        }
    }
    broadcast(&room, id, "left").await;
    room.borrow_mut().members.remove(&id);
    Ok(())
}

async fn serve(listener: TcpListener, room: SharedRoom) -> Result<(), Error> {
    loop {
        let (stream, _) = listener.accept().await?;
        create_task(serve_client(room.clone(), stream));
    }
}

/// A bot: says its lines, then prints what it heard.
async fn bot(
    port: u16,
    name: &'static str,
    lines: &'static [&'static str],
) -> Result<String, Error> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("/nick {name}\n").as_bytes())
        .await?;
    sleep(Duration::from_millis(20)).await?; // let everyone join
    for line in lines {
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        sleep(Duration::from_millis(5)).await?;
    }
    sleep(Duration::from_millis(50)).await?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut heard = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match evloop::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => heard.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    Ok(String::from_utf8_lossy(&heard).into_owned())
}

const OPTIONS: &[args::Opt] = &[
    args::Opt::value(
        "--port",
        "N",
        "the port to listen on (default 7879, or 0 with --demo: any free port)",
    ),
    args::Opt::flag("--demo", "three bots talk on the server, then it exits"),
];

#[evloop::main]
async fn main() -> Result<(), Error> {
    let args = args::Args::parse(
        "chat",
        "A line-based chat server on 127.0.0.1: each line a client sends goes to the others.",
        OPTIONS,
    );
    let demo = args.flag("--demo");
    let port: u16 = args.get("--port", if demo { 0 } else { 7879 });

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    println!("chat on 127.0.0.1:{port}");
    let room = SharedRoom::default();
    let server = create_task(serve(listener, room.clone()));

    if !demo {
        evloop::signal::ctrl_c().await?;
        server.cancel();
        return Ok(());
    }
    let transcripts = gather([
        create_task(bot(port, "ada", &["hello all", "how is the loop?"])),
        create_task(bot(
            port,
            "bob",
            &["hi ada", "single-threaded, no Send needed"],
        )),
        create_task(bot(port, "cyd", &["hey"])),
    ])
    .await?;
    for (name, heard) in ["ada", "bob", "cyd"].iter().zip(transcripts) {
        println!("--- what {name} heard");
        print!("{heard}");
    }
    server.cancel();
    Ok(())
}
