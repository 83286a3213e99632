//! A tokio `current_thread` + tokio-tungstenite WebSocket echo server: the
//! peer torsion's `/echo` is measured against (`benches/peers.sh`). Not
//! part of the product.
//!
//! Every path is an echo endpoint. Default settings (tokio-tungstenite's
//! own buffer sizes), as a typical user would run it.
//!
//! ```text
//! cargo run --release --example tokio_ws_echo -- 127.0.0.1:7003
//! ```

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7003".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("tokio_ws_echo listening on {}", listener.local_addr()?);
        loop {
            let (sock, _) = listener.accept().await?;
            let _ = sock.set_nodelay(true);
            tokio::spawn(echo(sock));
        }
    })
}

/// Echoes every text and binary message; tungstenite answers pings and the
/// close handshake itself. `forward` feeds the sink while messages are
/// ready and flushes once the stream would block, so pipelined messages go
/// out in one write, as tokio-tungstenite's own echo example does.
async fn echo(sock: TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(sock).await else {
        return;
    };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await;
}
