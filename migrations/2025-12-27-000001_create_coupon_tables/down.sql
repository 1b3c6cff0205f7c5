DROP TABLE event_participation_log;
DROP TABLE coupon_user;
DROP TABLE coupon;
