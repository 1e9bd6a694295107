// mio echo server: the same work as bench/servers/*.cpp (one thread, a 64 KiB
// read buffer, TCP_NODELAY, no allocation per request), written the way mio
// is meant to be used: mio is edge-triggered only, so each readable event reads
// until WouldBlock, echoing every read (one read more per event than a
// level-triggered loop).
//   srv_mio [--port P] [--requests N] [--size S]
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

const LISTENER: Token = Token(usize::MAX);

fn main() {
    let mut port: u16 = 0;
    let mut requests: u64 = 0;
    let mut size: u64 = 64;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage()),
            "--requests" => requests = value.parse().unwrap_or_else(|_| usage()),
            "--size" => size = value.parse().unwrap_or_else(|_| usage()),
            "--backend" => {}
            _ => usage(),
        }
        i += 2;
    }
    let limit = if requests > 0 { requests * size } else { u64::MAX };

    let mut poll = Poll::new().expect("poll");
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut listener = TcpListener::bind(addr).expect("bind");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("register");
    println!("port {}", listener.local_addr().expect("local_addr").port());
    std::io::stdout().flush().ok();

    // Connections by token; a free list reuses slots. Allocation only per connection.
    let mut conns: Vec<Option<TcpStream>> = Vec::with_capacity(1024);
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    let mut echoed: u64 = 0;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            panic!("poll: {e}");
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true).ok();
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(&mut stream, Token(slot), Interest::READABLE).expect("register");
                            conns[slot] = Some(stream);
                        }
                        Err(ref e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let slot = event.token().0;
            let mut close = false;
            if let Some(stream) = conns[slot].as_mut() {
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            match stream.write(&buf[..n]) {
                                Ok(w) if w == n => {}
                                _ => {
                                    close = true;  // a short write never happens at these sizes
                                    break;
                                }
                            }
                            echoed += n as u64;
                            if echoed >= limit {
                                return;
                            }
                        }
                        Err(ref e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(ref e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if close {
                if let Some(mut stream) = conns[slot].take() {
                    poll.registry().deregister(&mut stream).ok();
                }
                free.push(slot);
            }
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: srv_mio [--port P] [--requests N] [--size S]");
    std::process::exit(2);
}
