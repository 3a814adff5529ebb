//! Event time: ISO 8601 timestamps to milliseconds since the Unix epoch, and back.
//!
//! Only what CloudTrail and ECS documents carry is accepted: `YYYY-MM-DDTHH:MM:SS`, optional
//! fractional seconds (truncated to the millisecond, as Elasticsearch's `date` type does) and an
//! optional offset (`Z`, `±HH:MM` or `±HHMM`; none means UTC). Anything else is refused rather than
//! guessed.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type EpochMillis = i64;

/// Parses an ISO 8601 date-time. Returns `None` for anything malformed or out of range.
pub fn parse_iso8601(text: &str) -> Option<EpochMillis> {
    // The date and the time of day stand at fixed places in every spelling accepted
    // (`2019-08-21T19:55:59`), read without a cursor: a rule pack reads one per matching record.
    let (head, rest) = text.as_bytes().split_first_chunk::<19>()?;
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T' | b't',
        h0,
        h1,
        b':',
        n0,
        n1,
        b':',
        s0,
        s1,
    ] = *head
    else {
        return None;
    };
    let year = decimal(&[y0, y1, y2, y3])?;
    let month = decimal(&[m0, m1])?;
    let day = decimal(&[d0, d1])?;
    let hour = decimal(&[h0, h1])?;
    let minute = decimal(&[n0, n1])?;
    let second = decimal(&[s0, s1])?;

    // Fractions of a second and the offset, when written.
    let mut cursor = Cursor { bytes: rest, at: 0 };
    let mut millis = 0;
    if cursor.peek() == Some(b'.') || cursor.peek() == Some(b',') {
        cursor.at += 1;
        let start = cursor.at;
        while cursor.peek().is_some_and(|b| b.is_ascii_digit()) {
            cursor.at += 1;
        }
        let fraction = &rest[start..cursor.at];
        if fraction.is_empty() || fraction.len() > 9 {
            return None;
        }
        for (place, digit) in fraction.iter().take(3).enumerate() {
            millis += i64::from(digit - b'0') * [100, 10, 1][place];
        }
    }

    let offset_minutes = match cursor.next() {
        None => 0,
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = cursor.digits(2)?;
            if cursor.peek() == Some(b':') {
                cursor.at += 1;
            }
            let minutes = cursor.digits(2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if sign == b'-' { -total } else { total }
        }
        Some(_) => return None,
    };
    if cursor.at != rest.len() {
        return None;
    }

    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.sssZ`, the shape Elasticsearch
/// writes `@timestamp` in.
pub fn format_iso8601(millis: EpochMillis) -> String {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn digits(&mut self, count: usize) -> Option<i64> {
        let digits = self.bytes.get(self.at..self.at.checked_add(count)?)?;
        self.at += count;
        decimal(digits)
    }
}

/// The number `digits` spell in decimal; `None` when one is not a digit.
#[inline]
fn decimal(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0, |value, &digit| {
        digit
            .is_ascii_digit()
            .then(|| value * 10 + i64::from(digit - b'0'))
    })
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudtrail_times() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601("2018-11-28T23:03:20Z"),
            Some(1_543_446_200_000)
        );
        assert_eq!(
            parse_iso8601("2018-11-28T23:03:20.123456789Z"),
            Some(1_543_446_200_123)
        );
        assert_eq!(
            parse_iso8601("2018-11-28T23:03:20.5"),
            Some(1_543_446_200_500)
        );
    }

    #[test]
    fn applies_offsets() {
        let utc = parse_iso8601("2020-02-29T12:00:00Z");
        assert_eq!(parse_iso8601("2020-02-29T14:30:00+02:30"), utc);
        assert_eq!(parse_iso8601("2020-02-29T09:00:00-0300"), utc);
    }

    #[test]
    fn refuses_malformed_and_out_of_range() {
        for text in [
            "",
            "2021-01-01",
            "2021-01-01T00:00",
            "2021-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "2021-01-01T24:00:00Z",
            "2021-01-01T00:00:60Z",
            "2021-01-01T00:00:00.Z",
            "2021-01-01T00:00:00Zjunk",
            "2021-01-01T00:00:00+2400",
            "２021-01-01T00:00:00Z",
            "2021-01-01 00:00:00Z",
        ] {
            assert_eq!(parse_iso8601(text), None, "{text}");
        }
    }

    /// CloudTrail's spelling (`Z`, no fraction) gives what the same time spelled otherwise gives:
    /// over days, months, years, hours, minutes and seconds in and out of range, and a byte that is
    /// not a digit at every place.
    #[test]
    fn cloudtrail_spelling_reads_as_any_other() {
        let mut checked = 0;
        for year in [0, 1, 1969, 1970, 1999, 2000, 2020, 2021, 2100, 9999] {
            for month in [0, 1, 2, 4, 12, 13, 99] {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    for (hour, minute, second) in [(0, 0, 0), (23, 59, 59), (24, 0, 0), (9, 60, 7)]
                    {
                        let text = format!(
                            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
                        );
                        let read = parse_iso8601(&format!("{text}Z"));
                        assert_eq!(read, parse_iso8601(&format!("{text}.000Z")), "{text}");
                        assert_eq!(read, parse_iso8601(&format!("{text}+00:00")), "{text}");
                        checked += usize::from(read.is_some());
                    }
                }
            }
        }
        assert!(checked > 300, "{checked}");
        let text = "2019-08-21T19:55:59Z";
        for place in 0..text.len() {
            for byte in [b'/', b':', b'a', b' '] {
                let mut changed = text.as_bytes().to_vec();
                changed[place] = byte;
                let changed = String::from_utf8(changed).expect("ASCII");
                let expected = (changed == text).then(|| parse_iso8601(text)).flatten();
                assert_eq!(parse_iso8601(&changed), expected, "{changed}");
            }
        }
    }

    #[test]
    fn formats_round_trip() {
        for millis in [
            0,
            1_543_446_200_123,
            -1,
            951_825_600_000,
            253_402_300_799_999,
        ] {
            assert_eq!(parse_iso8601(&format_iso8601(millis)), Some(millis));
        }
        assert_eq!(
            format_iso8601(1_543_446_200_000),
            "2018-11-28T23:03:20.000Z"
        );
    }
}
