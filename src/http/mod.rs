//! HTTP/1.1 pieces shared by the client side and the upstream side: buffered sockets, head
//! parsing, body framing (and bodies spliced between plain TCP sockets), request targets,
//! cookies, the header rules applied when forwarding (a stripped prefix put back into a
//! backend's redirects and cookie paths among them), and the responses the proxy makes itself.

pub mod body;
pub mod bufstream;
pub mod cookie;
pub mod head;
pub mod host;
pub mod pace;
pub mod reply;
pub mod reprefix;
pub mod rewrite;
pub mod splice;
pub mod target;

pub use body::{CopyError, copy_body};
pub use bufstream::BufStream;
pub use head::{BodyKind, HeadError, Header, RequestHead, ResponseHead};
pub use reply::{Problem, Reply};
