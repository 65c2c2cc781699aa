//! HTTP/1.1 pieces shared by the client side and the upstream side: buffered sockets, head
//! parsing, body framing and the header rules applied when forwarding.
pub mod body;
pub mod bufstream;
pub mod head;
pub mod rewrite;

pub use body::{copy_body, CopyError};
pub use bufstream::{BufStream, Socket};
pub use head::{BodyKind, HeadError, Header, RequestHead, ResponseHead};
