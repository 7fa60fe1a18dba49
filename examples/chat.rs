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
//! Built on `net::start_server` (a task per client with an `io::BufReader` and an
//! `io::BufWriter`) and `evloop::sync`: every client has an outbox, a bounded [`Queue`]
//! that a writer task of its own drains into its `BufWriter`, so one slow client never
//! holds up the others (its outbox fills, and lines to it are dropped, not queued without bound). A
//! broadcast only puts into outboxes — it never awaits, so no borrow of the room is held
//! across an `.await`. Shutdown is an [`Event`]: when it is set (Ctrl-C, or the end of the
//! demo), the server stops accepting, says goodbye into every outbox, shuts the outboxes
//! down and waits (`Queue::join`) until every writer has flushed what was queued.

#[path = "common/args.rs"]
mod args;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{Server, StreamReader, StreamWriter, TcpStream, start_server};
use evloop::sync::{Event, Queue};
use evloop::{Error, create_task, gather, time::sleep};

/// Lines waiting for a client's writer; beyond this a slow client misses lines.
const OUTBOX: usize = 256;

struct Member {
    name: String,
    outbox: Queue<Rc<str>>,
}

#[derive(Default)]
struct Room {
    next_id: u32,
    members: BTreeMap<u32, Member>,
}

type SharedRoom = Rc<RefCell<Room>>;

/// Puts `line` from member `from` into every other member's outbox.
fn broadcast(room: &SharedRoom, from: u32, line: &str) {
    let (name, outboxes): (String, Vec<Queue<Rc<str>>>) = {
        let room = room.borrow();
        let name = room
            .members
            .get(&from)
            .map_or_else(|| "?".into(), |m| m.name.clone());
        let outboxes = room
            .members
            .iter()
            .filter(|(id, _)| **id != from)
            .map(|(_, m)| m.outbox.clone())
            .collect();
        (name, outboxes)
    };
    let message: Rc<str> = format!("{name}: {line}\n").into();
    for outbox in outboxes {
        // A full outbox (a client that does not read) or a closed one misses the line.
        let _ = outbox.put_nowait(message.clone());
    }
}

/// Drains a client's outbox into its writer until the outbox is shut down and empty. A
/// line counts as done (`task_done`) once it is written — flushed to the socket when
/// it was the last one queued — so `Queue::join` means "all sent".
async fn write_outbox(mut writer: StreamWriter, outbox: Queue<Rc<str>>) {
    while let Ok(line) = outbox.get().await {
        let sent = match writer.write(line.as_bytes()) {
            Ok(()) if outbox.empty() => writer.flush().await,
            Ok(()) => writer.drain().await,
            Err(e) => Err(e),
        };
        let _ = outbox.task_done();
        if sent.is_err() {
            break; // the client went away; what is left is dropped with the queue
        }
    }
    let _ = writer.close().await;
}

async fn serve_client(
    room: SharedRoom,
    mut reader: StreamReader,
    writer: StreamWriter,
) -> Result<(), Error> {
    let peer = reader.get_ref().peer_addr()?;
    let outbox = Queue::new(OUTBOX);
    let writer = create_task({
        let outbox = outbox.clone();
        async move {
            write_outbox(writer, outbox).await;
            Ok(())
        }
    });
    let id = {
        let mut room = room.borrow_mut();
        room.next_id += 1;
        let id = room.next_id;
        let name = format!("guest{id}");
        room.members.insert(
            id,
            Member {
                name,
                outbox: outbox.clone(),
            },
        );
        id
    };
    broadcast(&room, id, &format!("joined from {peer}"));
    let mut line = Vec::new();
    loop {
        line.clear();
        // One line at a time (at most the reader's 64 KiB limit); the buffer is reused.
        if reader.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if let Some(name) = text.strip_prefix("/nick ") {
            if let Some(member) = room.borrow_mut().members.get_mut(&id) {
                member.name = name.to_string();
            }
        } else if !text.is_empty() {
            broadcast(&room, id, text);
        }
    }
    broadcast(&room, id, "left");
    room.borrow_mut().members.remove(&id);
    outbox.shutdown(false); // the writer flushes what is queued, then ends
    writer.await
}

/// Serves until `closing` is set, then stops accepting and flushes every outbox.
async fn serve(server: Server, room: SharedRoom, closing: Event) -> Result<(), Error> {
    closing.wait().await?;
    server.close();
    let outboxes: Vec<Queue<Rc<str>>> = room
        .borrow()
        .members
        .values()
        .map(|m| m.outbox.clone())
        .collect();
    for outbox in &outboxes {
        let _ = outbox.put_nowait("server: closing, bye\n".into());
        outbox.shutdown(false);
    }
    for outbox in &outboxes {
        outbox.join().await?; // every queued line has been sent
    }
    Ok(())
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

    let room = SharedRoom::default();
    let server = {
        let room = room.clone();
        start_server(
            move |reader, writer| serve_client(room.clone(), reader, writer),
            ("127.0.0.1", port),
        )
        .await?
    };
    let port = server.sockets()[0].port();
    println!("chat on 127.0.0.1:{port}");
    let closing = Event::new();
    let server = create_task(serve(server, room, closing.clone()));

    if !demo {
        evloop::signal::ctrl_c().await?;
        closing.set();
        return server.await;
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
    closing.set();
    server.await
}
