//! Diesel table definitions matching `migrations/`.

diesel::table! {
    coupon (id) {
        id -> BigInt,
        name -> Varchar,
        discount_amount -> Unsigned<Integer>,
        total_quantity -> Unsigned<Integer>,
        available_quantity -> Integer,
        issue_starts_at -> Datetime,
        issue_ends_at -> Datetime,
        expiry_days -> Unsigned<SmallInt>,
        created_at -> Datetime,
        rate_limit_per_user -> Nullable<Unsigned<Integer>>,
        rate_limit_per_client -> Nullable<Unsigned<Integer>>,
        rate_limit_window_ms -> Nullable<Unsigned<Integer>>,
    }
}

diesel::table! {
    coupon_user (id) {
        id -> BigInt,
        coupon_id -> BigInt,
        user_id -> Varchar,
        request_id -> Char,
        status -> Varchar,
        issued_at -> Datetime,
        expires_at -> Datetime,
    }
}

diesel::table! {
    event_participation_log (id) {
        id -> BigInt,
        coupon_id -> BigInt,
        user_id -> Varchar,
        outcome -> Varchar,
        request_id -> Char,
        occurred_at -> Datetime,
    }
}

diesel::table! {
    compensation (id) {
        id -> BigInt,
        source_coupon_id -> BigInt,
        window_starts_at -> Datetime,
        window_ends_at -> Datetime,
        compensation_coupon_id -> BigInt,
        created_at -> Datetime,
    }
}

diesel::table! {
    outbox (seq) {
        seq -> BigInt,
        id -> Char,
        aggregatetype -> Varchar,
        aggregateid -> Varchar,
        #[sql_name = "type"]
        event_type -> Varchar,
        payload -> Varchar,
        coupon_id -> BigInt,
        traceparent -> Nullable<Varchar>,
        created_at -> Datetime,
        published_at -> Nullable<Datetime>,
    }
}

diesel::joinable!(coupon_user -> coupon (coupon_id));
diesel::allow_tables_to_appear_in_same_query!(
    coupon,
    coupon_user,
    event_participation_log,
    compensation,
    outbox
);
