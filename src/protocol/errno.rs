//! errno numbers and the names TrueNAS gives them (`docs/middleware.md` §3.2).
//!
//! Linux names for the common numbers, the TrueNAS custom errnos 201..=210, and `EZFS_*` for
//! 2000..=2100 as a generic name. Anything else is `EUNKNOWN`, as the server says.

/// Operation not permitted.
pub const EPERM: i64 = 1;
/// No such file or directory (`InstanceNotFound` carries it in `extra`).
pub const ENOENT: i64 = 2;
/// Try again; the legacy protocol uses it for a list of validation errors.
pub const EAGAIN: i64 = 11;
/// Permission denied ("Not authorized").
pub const EACCES: i64 = 13;
/// Bad address (server-side serialization failure, CalledProcessError).
pub const EFAULT: i64 = 14;
/// Device or resource busy (rate limit, job lock).
pub const EBUSY: i64 = 16;
/// File exists (duplicate app name).
pub const EEXIST: i64 = 17;
/// Invalid argument (the default errno of validation errors).
pub const EINVAL: i64 = 22;
/// Operation not supported (mechanism not allowed at this level).
pub const EOPNOTSUPP: i64 = 95;
/// Connection aborted.
pub const ECONNABORTED: i64 = 103;
/// Too many references (legacy concurrency limit).
pub const ETOOMANYREFS: i64 = 109;
/// Connection timed out.
pub const ETIMEDOUT: i64 = 110;
/// TrueNAS: method not found on a versioned endpoint.
pub const ENOMETHOD: i64 = 201;
/// TrueNAS: the session is not authenticated.
pub const ENOTAUTHENTICATED: i64 = 207;

const LINUX: &[(i64, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (9, "EBADF"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (24, "EMFILE"),
    (28, "ENOSPC"),
    (30, "EROFS"),
    (32, "EPIPE"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (71, "EPROTO"),
    (95, "EOPNOTSUPP"),
    (98, "EADDRINUSE"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (109, "ETOOMANYREFS"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (125, "ECANCELED"),
];

const TRUENAS: &[(i64, &str)] = &[
    (201, "ENOMETHOD"),
    (202, "ESERVICESTARTFAILURE"),
    (203, "EALERTCHECKERUNAVAILABLE"),
    (204, "EREMOTENODEERROR"),
    (205, "EDATASETISLOCKED"),
    (206, "EINVALIDRRDTIMESTAMP"),
    (207, "ENOTAUTHENTICATED"),
    (208, "ESSLCERTVERIFICATIONERROR"),
    (209, "EREBOOTREQUIRED"),
    (210, "EHAUNAVAILABLE"),
];

/// The name the server puts in `errname` for an errno.
pub fn name(errno: i64) -> &'static str {
    if let Some((_, n)) = LINUX.iter().chain(TRUENAS).find(|(e, _)| *e == errno) {
        return n;
    }
    if (2000..=2100).contains(&errno) {
        return "EZFS";
    }
    "EUNKNOWN"
}

/// The errno for a name, for the names in the tables above.
pub fn number(name: &str) -> Option<i64> {
    LINUX
        .iter()
        .chain(TRUENAS)
        .find(|(_, n)| *n == name)
        .map(|(e, _)| *e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(name(ENOTAUTHENTICATED), "ENOTAUTHENTICATED");
        assert_eq!(name(EINVAL), "EINVAL");
        assert_eq!(number("EEXIST"), Some(EEXIST));
        assert_eq!(name(2005), "EZFS");
        assert_eq!(name(9999), "EUNKNOWN");
        assert_eq!(number("ENOPE"), None);
    }
}
