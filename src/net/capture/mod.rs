//! The packet path: what the capture threads run for every frame, and nothing slower.
//!
//! - [`pcap_source`]: one libpcap handle, the only libpcap code;
//! - [`packet`] (with [`fragments`]): link, network and transport headers -> one flow-tagged
//!   packet, never reading past the captured length;
//! - [`flows`]: the flow table: per-packet crediting, bytes held until the owner is known;
//! - [`host_addresses`]: the host's own addresses, for captures without a direction;
//! - [`thread`]: the capture thread's loop: packets in, lookups out to the resolver, answers
//!   and topology taken between packets, totals published every 50 ms.
//!
//! The rule of this folder: it never blocks on anything but libpcap, and it imports neither the
//! netlink clients ([`super::netlink`]) nor owner resolution ([`super::ownership`]). It speaks
//! to the resolver only through [`super::types::Request`] and reads the topology the resolver
//! publishes ([`super::topology`]).

pub mod flows;
pub mod fragments;
pub mod host_addresses;
pub mod packet;
pub mod pcap_source;
pub mod thread;
