//! A minimal raw-protocol client: TLS to the proxy or plain TCP to the cluster, SCRAM login,
//! and the few frontend messages the tests forge. It keeps every backend message as the bytes
//! that arrived, so tests can compare streams byte for byte or send deliberately broken input.

use super::proxy::{self, TestProxy};
use bytes::{BufMut, Bytes, BytesMut};
use redveil::auth::ScramClient;
use redveil::net::Stream;
use redveil::protocol::backend::{decode_auth, AuthRequest, ErrorFields};
use redveil::protocol::startup::StartupMessage;
use redveil::protocol::{frontend, tag};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message, header included (`raw[0]` is the type byte).
#[derive(Clone, PartialEq, Eq)]
pub struct Msg {
    pub tag: u8,
    pub raw: Bytes,
}

impl Msg {
    pub fn body(&self) -> &[u8] {
        &self.raw[5..]
    }

    /// Severity, SQLSTATE and message of an ErrorResponse or NoticeResponse.
    pub fn fields(&self) -> ErrorFields {
        assert!(
            self.tag == tag::ERROR_RESPONSE || self.tag == tag::NOTICE_RESPONSE,
            "not an error or notice: {self:?}"
        );
        ErrorFields::decode(self.body()).expect("well-formed error fields")
    }

    /// The tag of a CommandComplete.
    pub fn command_tag(&self) -> String {
        assert_eq!(self.tag, tag::COMMAND_COMPLETE, "{self:?}");
        String::from_utf8_lossy(&self.body()[..self.body().len() - 1]).into_owned()
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let preview: String = self
            .body()
            .iter()
            .take(80)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        write!(
            f,
            "{}[{} bytes] {preview:?}",
            self.tag as char,
            self.raw.len()
        )
    }
}

/// A raw protocol connection after (or before) startup.
pub struct RawConn {
    pub stream: Stream,
    buf: BytesMut,
    /// The messages of the startup phase (authentication through the first ReadyForQuery).
    pub startup: Vec<Msg>,
}

/// SSLRequest and a TLS handshake with the proxy; returns the TLS stream before startup.
pub async fn tls_to_proxy(p: &TestProxy) -> Stream {
    tls_to(p.addr, &p.ca).await
}

pub async fn tls_to(addr: std::net::SocketAddr, ca: &Path) -> Stream {
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    tls_over(tcp, ca).await
}

/// Like [`tls_to_proxy`], with a small socket receive buffer so the proxy's writes soon find
/// the connection full whenever the client reads slowly.
pub async fn tls_to_proxy_small_window(p: &TestProxy) -> Stream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let tcp = socket.connect(p.addr).await.expect("connect to the proxy");
    tls_over(tcp, &p.ca).await
}

async fn tls_over(mut tcp: TcpStream, ca: &Path) -> Stream {
    tcp.set_nodelay(true).expect("nodelay");
    tcp.write_all(&redveil::protocol::startup::encode_ssl_request())
        .await
        .expect("SSLRequest");
    assert_eq!(tcp.read_u8().await.expect("SSL answer"), b'S');
    let connector = tokio_rustls::TlsConnector::from(Arc::new(proxy::client_tls(ca)));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls)))
}

impl RawConn {
    /// Logged in to the proxy over TLS as a demo user with extra startup parameters.
    pub async fn proxy(p: &TestProxy, user: &str, params: &[(&str, &str)]) -> RawConn {
        let stream = tls_to_proxy(p).await;
        Self::login(stream, user, &proxy::PASSWORD_OF(user), "demo", params).await
    }

    /// Logged in directly to the test cluster as the proxy's own backend login, over TCP.
    pub async fn direct(params: &[(&str, &str)]) -> RawConn {
        let demo = super::demo();
        let tcp = TcpStream::connect((demo.host.as_str(), demo.port))
            .await
            .expect("connect to the cluster");
        tcp.set_nodelay(true).expect("nodelay");
        Self::login(
            Stream::Plain(tcp),
            &demo.query_user,
            &demo.query_password,
            &demo.database,
            params,
        )
        .await
    }

    /// A connection on which nothing has been sent yet.
    pub fn unstarted(stream: Stream) -> RawConn {
        RawConn {
            stream,
            buf: BytesMut::new(),
            startup: Vec::new(),
        }
    }

    /// StartupMessage and SCRAM-SHA-256 (or cleartext) login, up to ReadyForQuery.
    pub async fn login(
        stream: Stream,
        user: &str,
        password: &str,
        database: &str,
        params: &[(&str, &str)],
    ) -> RawConn {
        let mut conn = Self::unstarted(stream);
        let mut all = vec![
            ("user".to_string(), user.to_string()),
            ("database".to_string(), database.to_string()),
        ];
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        conn.send(&StartupMessage::encode(&all)).await;
        let mut scram: Option<ScramClient> = None;
        loop {
            let m = conn
                .recv()
                .await
                .expect("startup read")
                .expect("startup EOF");
            conn.startup.push(m.clone());
            let mut out = BytesMut::new();
            match m.tag {
                tag::AUTHENTICATION => match decode_auth(m.body()).expect("auth request") {
                    AuthRequest::Ok => {}
                    AuthRequest::Cleartext => {
                        frontend::encode_password(&mut out, password.as_bytes())
                    }
                    AuthRequest::Sasl(mechanisms) => {
                        let mechanism = ScramClient::choose_mechanism(mechanisms).expect("SCRAM");
                        let mut client = ScramClient::new(password);
                        let first = client.client_first();
                        frontend::encode_sasl_initial(&mut out, mechanism, &first);
                        scram = Some(client);
                    }
                    AuthRequest::SaslContinue(data) => {
                        let reply = scram
                            .as_mut()
                            .expect("SASL")
                            .server_first(data)
                            .expect("SCRAM");
                        frontend::put_message(&mut out, tag::PASSWORD, &reply);
                    }
                    AuthRequest::SaslFinal(data) => scram
                        .as_mut()
                        .expect("SASL")
                        .server_final(data)
                        .expect("SCRAM final"),
                    other => panic!("unsupported authentication request {other:?}"),
                },
                tag::ERROR_RESPONSE => panic!("login failed: {:?}", m.fields()),
                tag::READY_FOR_QUERY => return conn,
                _ => {}
            }
            if !out.is_empty() {
                conn.send(&out).await;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Writes without panicking (for peers that may already have closed).
    pub async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next whole message; `None` at end of stream (a TLS close without close_notify
    /// counts as the end too).
    pub async fn recv(&mut self) -> io::Result<Option<Msg>> {
        read_msg(&mut self.stream, &mut self.buf).await
    }

    /// Separate read and write halves, for writing and reading at the same time.
    pub fn into_split(
        self,
    ) -> (
        Reader<tokio::io::ReadHalf<Stream>>,
        tokio::io::WriteHalf<Stream>,
    ) {
        let (r, w) = tokio::io::split(self.stream);
        (Reader { r, buf: self.buf }, w)
    }

    /// Every message up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m =
                self.recv().await.expect("read").unwrap_or_else(|| {
                    panic!("connection closed before ReadyForQuery; got {out:?}")
                });
            let done = m.tag == tag::READY_FOR_QUERY;
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Reads until the peer closes; returns what arrived before.
    pub async fn until_closed(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Ok(Some(m)) = self.recv().await {
            out.push(m);
        }
        out
    }

    /// A simple query's replies.
    pub async fn simple(&mut self, sql: &str) -> Vec<Msg> {
        let mut out = BytesMut::new();
        frontend::query(&mut out, sql);
        self.send(&out).await;
        self.until_ready().await
    }
}

/// The read half of a split [`RawConn`].
pub struct Reader<R> {
    r: R,
    buf: BytesMut,
}

impl<R: tokio::io::AsyncRead + Unpin> Reader<R> {
    pub async fn recv(&mut self) -> io::Result<Option<Msg>> {
        read_msg(&mut self.r, &mut self.buf).await
    }
}

async fn read_msg(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> io::Result<Option<Msg>> {
    loop {
        if buf.len() >= 5 {
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            let total = len as usize + 1;
            if buf.len() >= total {
                let raw = buf.split_to(total).freeze();
                return Ok(Some(Msg { tag: raw[0], raw }));
            }
            buf.reserve(total - buf.len());
        }
        match stream.read_buf(buf).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Parse of `sql` as statement `name` with no declared parameter types.
pub fn parse(out: &mut BytesMut, name: &str, sql: &str) {
    let mut body = BytesMut::new();
    body.put_slice(name.as_bytes());
    body.put_u8(0);
    body.put_slice(sql.as_bytes());
    body.put_u8(0);
    body.put_i16(0);
    frontend::put_message(out, tag::PARSE, &body);
}

/// Bind of `statement` to `portal`: text parameters (None = NULL) and result format codes.
pub fn bind(
    out: &mut BytesMut,
    portal: &str,
    statement: &str,
    params: &[Option<&[u8]>],
    result_formats: &[i16],
) {
    let mut body = BytesMut::new();
    body.put_slice(portal.as_bytes());
    body.put_u8(0);
    body.put_slice(statement.as_bytes());
    body.put_u8(0);
    body.put_i16(0);
    body.put_i16(params.len() as i16);
    for p in params {
        match p {
            Some(v) => {
                body.put_i32(v.len() as i32);
                body.put_slice(v);
            }
            None => body.put_i32(-1),
        }
    }
    body.put_i16(result_formats.len() as i16);
    for f in result_formats {
        body.put_i16(*f);
    }
    frontend::put_message(out, tag::BIND, &body);
}

/// Describe of a statement (`b'S'`) or portal (`b'P'`).
pub fn describe(out: &mut BytesMut, kind: u8, name: &str) {
    let mut body = vec![kind];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    frontend::put_message(out, tag::DESCRIBE, &body);
}

/// Execute of `portal`, at most `max_rows` rows (0 = all).
pub fn execute(out: &mut BytesMut, portal: &str, max_rows: i32) {
    let mut body = BytesMut::new();
    body.put_slice(portal.as_bytes());
    body.put_u8(0);
    body.put_i32(max_rows);
    frontend::put_message(out, tag::EXECUTE, &body);
}

pub fn sync(out: &mut BytesMut) {
    frontend::sync(out);
}

/// The SQLSTATEs of the ErrorResponses among `messages`.
pub fn error_codes(messages: &[Msg]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.tag == tag::ERROR_RESPONSE)
        .map(|m| m.fields().code)
        .collect()
}
